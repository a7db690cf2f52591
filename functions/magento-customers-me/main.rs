//! `GET /rest/V1/customers/me` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-customers-me")
}
