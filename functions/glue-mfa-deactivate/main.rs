//! `POST /multi-factor-auth-type-deactivate` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-mfa-deactivate")
}
