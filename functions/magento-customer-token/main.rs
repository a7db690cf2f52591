//! `POST /rest/V1/integration/customer/token` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-customer-token")
}
