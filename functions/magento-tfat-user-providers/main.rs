//! `GET /rest/V1/tfa/tfat-user-providers` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-tfat-user-providers")
}
