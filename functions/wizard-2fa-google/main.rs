//! `POST /api/v2/my/2fa/google` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("wizard-2fa-google")
}
