//! `POST /api/v2/my/refresh` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-refresh")
}
