//! `POST /rest/V1/otp/customers/{customerId}/tokens/revoke` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magic-link-revoke-tokens")
}
