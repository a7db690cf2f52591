//! `DELETE /customers/{customerReference}/multi-factor-auth` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-customer-mfa-reset")
}
