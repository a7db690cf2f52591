//! `GET /rest/V1/tfa/tfat-providers-to-activate` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-tfat-providers-to-activate")
}
