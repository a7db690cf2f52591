//! `DELETE /rest/V1/integrations/{integrationId}` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-integration-delete")
}
