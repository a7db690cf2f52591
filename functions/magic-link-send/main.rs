//! `POST /rest/V1/otp/send` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magic-link-send")
}
