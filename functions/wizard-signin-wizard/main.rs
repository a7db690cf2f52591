//! `GET /api/v2/my/signin/wizard` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-signin-wizard")
}
