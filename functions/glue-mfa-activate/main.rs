//! `POST /multi-factor-auth-type-activate` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-mfa-activate")
}
