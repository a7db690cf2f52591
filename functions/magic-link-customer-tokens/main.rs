//! `GET /rest/V1/otp/customers/{customerId}/tokens` as a Lambda function.

fn main() -> std::process::ExitCode {
    latchkey_aws::lambda::main("magic-link-customer-tokens")
}
