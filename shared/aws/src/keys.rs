//! The key set from SSM Parameter Store: a SecureString read (and decrypted) once per cold
//! start, so keys never sit in plain text in the function's configuration.

use aws_sdk_ssm::error::ProvideErrorMetadata;

pub async fn load_key_set_json(client: &aws_sdk_ssm::Client, name: &str) -> Result<String, String> {
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading SSM parameter {name}: {}",
                e.code().unwrap_or("request failed")
            )
        })?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_owned)
        .ok_or_else(|| format!("SSM parameter {name} has no value"))
}
