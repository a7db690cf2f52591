//! Creating the table where no template did: for a local emulator and tests. Deployments
//! create it from `template.yaml` (same key schema, TTL attribute and stream).

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use latchkey_core::store::StoreError;

use super::DynamoStore;
use super::codec::{EXP, PK, SK};
use super::errors::map_error;

impl DynamoStore {
    /// Creates the table (on-demand, TTL on `expires_at`, stream on) if it is missing. For local
    /// use and tests; deployments create it from `template.yaml`.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            StreamSpecification, StreamViewType, TimeToLiveSpecification,
        };
        if self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(invalid)?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(SK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(invalid)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(invalid)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(SK)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(invalid)?,
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::KeysOnly)
                    .build()
                    .map_err(invalid)?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
            Err(e) => return Err(map_error(&e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(EXP)
                    .enabled(true)
                    .build()
                    .map_err(invalid)?,
            )
            .send()
            .await
            .map_err(|e| map_error(&e))?;
        Ok(())
    }
}
