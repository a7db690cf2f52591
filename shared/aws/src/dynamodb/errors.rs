//! SDK failures mapped onto the store port's errors, after the SDK's own retries. No error
//! carries item contents.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use latchkey_core::store::StoreError;

/// Maps an SDK failure (after the SDK's own retries) onto the port's errors. Never includes
/// item contents.
pub fn map_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> StoreError {
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            match code {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException"
                | "ReplicatedWriteConflictException" => {
                    StoreError::Busy(format!("DynamoDB: {code}"))
                }
                "ValidationException" | "SerializationException" => StoreError::Invalid(format!(
                    "DynamoDB: {code}: {}",
                    service.err().message().unwrap_or("")
                )),
                _ => StoreError::Failure(format!("DynamoDB: {code}")),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Busy(format!("DynamoDB unreachable: {}", err_kind(err)))
        }
        _ => StoreError::Failure(format!("DynamoDB request: {}", err_kind(err))),
    }
}

fn err_kind<E, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "construction failure",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure",
        SdkError::ResponseError(_) => "response error",
        SdkError::ServiceError(_) => "service error",
        _ => "error",
    }
}

pub fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}
