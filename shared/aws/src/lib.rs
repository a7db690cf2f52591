//! latchkey on AWS: the DynamoDB store, SES mail, SNS SMS, keys from SSM, and the glue that
//! runs one route as one Lambda function (and the stream-fed `link-mailer` function).

pub mod clients;
pub mod dynamodb;
pub mod keys;
pub mod lambda;
pub mod recaptcha;
pub mod send;
pub mod setup;
pub mod stream;
