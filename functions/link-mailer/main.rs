//! `link-mailer`: emails login links, fed by the table's stream (mail requests only), an SQS
//! queue and EventBridge events. Not an HTTP route.

fn main() -> std::process::ExitCode {
    latchkey_aws::stream::main()
}
