//! `POST /api/v2/my/signin/tokens` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-signin-tokens")
}
