//! `GET /openapi.json` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("openapi")
}
