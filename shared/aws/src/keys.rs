//! The key set in SSM Parameter Store: a SecureString read (and decrypted) once per cold start,
//! so keys never sit in plain text in the function's configuration; and read and written back
//! under the same KMS key by `latchkey keys rotate`.

use aws_sdk_ssm::error::DisplayErrorContext;
use aws_sdk_ssm::types::{ParameterStringFilter, ParameterTier, ParameterType};

/// The parameter as read for a rotation.
pub struct Current {
    pub json: String,
    version: i64,
    /// The KMS key of the parameter: written back under the same one (without it, SSM
    /// would switch to the account's default key).
    key_id: Option<String>,
}

/// The decrypted value of the parameter `name`, and its version.
async fn read_value(client: &aws_sdk_ssm::Client, name: &str) -> Result<(String, i64), String> {
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| format!("reading SSM parameter {name}: {}", DisplayErrorContext(&e)))?;
    let parameter = out
        .parameter()
        .ok_or_else(|| format!("SSM parameter {name} has no value"))?;
    let value = parameter
        .value()
        .ok_or_else(|| format!("SSM parameter {name} has no value"))?
        .to_owned();
    Ok((value, parameter.version()))
}

/// The parameter `name` with what writing it back needs (its version and KMS key).
pub async fn read(client: &aws_sdk_ssm::Client, name: &str) -> Result<Current, String> {
    let (json, version) = read_value(client, name).await?;
    let filter = ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .values(name)
        .build()
        .map_err(|e| format!("describing SSM parameter {name}: {e}"))?;
    let described = client
        .describe_parameters()
        .parameter_filters(filter)
        .send()
        .await
        .map_err(|e| {
            format!(
                "describing SSM parameter {name} (to keep its KMS key): {}",
                DisplayErrorContext(&e)
            )
        })?;
    let key_id = described
        .parameters()
        .iter()
        .find(|p| p.name() == Some(name))
        .and_then(|p| p.key_id())
        .map(str::to_owned);
    Ok(Current {
        json,
        version,
        key_id,
    })
}

/// Writes the rotated key set; returns a note for the operator.
pub async fn write(
    client: &aws_sdk_ssm::Client,
    name: &str,
    json: &str,
    current: &Current,
) -> Result<String, String> {
    let out = client
        .put_parameter()
        .name(name)
        .value(json)
        .r#type(ParameterType::SecureString)
        // A key set outgrows a standard parameter's 4 KB once rotated (5.7 KB after one
        // `keys rotate --all`): intelligent tiering makes it an advanced one (8 KB) only then.
        .tier(ParameterTier::IntelligentTiering)
        .set_key_id(current.key_id.clone())
        .overwrite(true)
        .send()
        .await
        .map_err(|e| format!("writing SSM parameter {name}: {}", DisplayErrorContext(&e)))?;
    let version = out.version();
    Ok(if version == current.version.saturating_add(1) {
        format!("SSM parameter {name} is now at version {version}\n")
    } else {
        format!(
            "warning: SSM parameter {name} went from version {} to {version}: something else \
             wrote it meanwhile, and that write is lost; check the key set\n",
            current.version
        )
    })
}

/// The key set JSON of the parameter `name` (what a function loads at cold start).
pub async fn load_key_set_json(client: &aws_sdk_ssm::Client, name: &str) -> Result<String, String> {
    Ok(read_value(client, name).await?.0)
}
