//! `POST /rest/V1/tfa/provider/google/authenticate` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-google-authenticate")
}
