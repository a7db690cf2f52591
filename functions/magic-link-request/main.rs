//! `POST /customer/otp/request` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magic-link-request")
}
