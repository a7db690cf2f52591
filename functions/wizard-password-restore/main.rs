//! `POST /api/v2/my/signin/password/restore` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-password-restore")
}
