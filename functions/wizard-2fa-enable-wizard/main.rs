//! `GET /api/v2/my/2fa/{type}/enable/wizard` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-2fa-enable-wizard")
}
