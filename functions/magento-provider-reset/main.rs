//! `POST /rest/V1/tfa/provider/{providerCode}/reset/{userId}` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-provider-reset")
}
