//! `POST /rest/V1/tfa/provider/google/configure` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magento-google-configure")
}
