//! `POST /multi-factor-auth-trigger` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-mfa-trigger")
}
