//! `POST /api/v2/my/signin` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-signin")
}
