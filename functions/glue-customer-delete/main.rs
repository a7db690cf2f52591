//! `DELETE /customers/{customerReference}` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-customer-delete")
}
