//! `POST /rest/V1/integration/admin/token` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-admin-token")
}
