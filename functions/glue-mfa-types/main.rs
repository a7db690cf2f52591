//! `GET /multi-factor-auth-types` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-mfa-types")
}
