//! `GET /customer/otp/auth/token/{token}/` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magic-link-landing")
}
