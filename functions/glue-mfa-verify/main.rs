//! `POST /multi-factor-auth-type-verify` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-mfa-verify")
}
