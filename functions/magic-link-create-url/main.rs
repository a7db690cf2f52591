//! `POST /rest/V1/otp/createUrl` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magic-link-create-url")
}
