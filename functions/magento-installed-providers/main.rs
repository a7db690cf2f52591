//! `GET /rest/V1/tfa/installed-providers` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-installed-providers")
}
