//! `POST /rest/V1/integrations` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-integration-create")
}
