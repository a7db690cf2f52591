//! `POST /api/v2/my/signin/2fa` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-signin-2fa")
}
