//! `GET /rest/V1/tfa/forced-providers` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-forced-providers")
}
