//! `GET /rest/V1/tfa/user-providers/{userId}` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-user-providers")
}
