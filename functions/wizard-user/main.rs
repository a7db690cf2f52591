//! `GET /api/v2/my/user` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-user")
}
