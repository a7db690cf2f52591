//! `GET /rest/V1/tfa/providers-to-activate/{userId}` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-providers-to-activate")
}
