//! `DELETE /refresh-tokens/{refreshToken}` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("glue-refresh-tokens-revoke")
}
