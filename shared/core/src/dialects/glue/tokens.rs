//! Tokens: customer sign-in (`POST /access-tokens`), refresh (`POST /refresh-tokens`), sign-out
//! (`DELETE /refresh-tokens/{token}`, `.../mine`), and back-office sign-in over OAuth 2.0
//! (`POST /token`).

use http::StatusCode;
use serde_json::json;

use super::errors::{self, GlueError};
use super::{Answer, Kind, VIA, attributes, origin, required, resource, subject};
use crate::app::App;
use crate::identity::sessions::{self, Issued};
use crate::identity::users::Role;
use crate::identity::{Error, accounts};
use crate::routes::Call;
use crate::web;

/// Spryker's token attributes.
fn token_attributes(issued: &Issued) -> serde_json::Value {
    json!({
        "tokenType": "Bearer",
        "expiresIn": issued.access_expires_at - issued.issued_at,
        "accessToken": issued.access_token,
        "refreshTokenExpiresIn": issued.refresh_expires_at - issued.issued_at,
        "refreshToken": issued.refresh_token.expose(),
    })
}

/// `POST /access-tokens`: `{username, password}` of a customer.
pub async fn access_tokens(app: &App, call: &Call) -> Answer {
    let attrs = attributes(app, call, "access-tokens")?;
    let [username, password] = required(&attrs, ["username", "password"])?;
    let si = app.signin(&app.config.glue.signin);
    let user = si
        .password(&username, &password, Role::Customer, origin(call))
        .await?
        .complete(&si)
        .await?;
    let issued = app
        .sessions()
        .start(
            &user,
            subject(app, &user),
            &app.config.glue.customer_sessions,
            origin(call),
        )
        .await?;
    Ok(resource(
        StatusCode::CREATED,
        "access-tokens",
        None,
        token_attributes(&issued),
    ))
}

/// `POST /refresh-tokens`: `{refreshToken}`.
pub async fn refresh_tokens(app: &App, call: &Call) -> Answer {
    let attrs = attributes(app, call, "refresh-tokens")?;
    let [token] = required(&attrs, ["refreshToken"])?;
    let refused = || GlueError::coded(StatusCode::UNAUTHORIZED, errors::INVALID_REFRESH_TOKEN);
    let (_, issued) = app
        .sessions()
        .refresh(
            &token,
            &app.config.glue.customer_sessions,
            origin(call),
            |user| subject(app, user),
        )
        .await
        .map_err(|e| match e {
            Error::InvalidToken | Error::TokenExpired | Error::NotFound => refused(),
            other => other.into(),
        })?;
    Ok(resource(
        StatusCode::CREATED,
        "refresh-tokens",
        None,
        token_attributes(&issued),
    ))
}

/// `DELETE /refresh-tokens/{refreshToken}`: the caller's own refresh token (its session ends),
/// or `mine`: every token of the caller. Another's token, or none of ours, changes nothing and
/// gets the same 204.
pub async fn revoke_refresh_token(app: &App, call: &Call) -> Answer {
    let caller = super::protected_caller(app, call, |_| GlueError::invalid_token()).await?;
    let token = call.params.get("refreshToken").unwrap_or_default();
    if token == "mine" {
        match accounts::revoke_tokens(app.db(), caller.user.id, VIA).await {
            Ok(()) | Err(Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    } else {
        let sessions = app.sessions();
        if let Some(sid) = sessions.session_of_refresh_token(token)
            && sessions::uid_of_sid(sid) == Some(caller.user.id)
        {
            sessions.revoke(sid, origin(call)).await?;
        }
    }
    Ok(web::empty(StatusCode::NO_CONTENT))
}

/// `POST /token` (form-encoded): OAuth 2.0's password grant for back-office users, and its
/// refresh_token grant. Answers and errors in RFC 6749's shape.
pub async fn token(app: &App, call: &Call) -> Answer {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(call.req.body())
        .into_owned()
        .collect();
    let field = |name: &str| -> Result<String, GlueError> {
        let mut values = form.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (Some((_, v)), None) if !v.is_empty() && v.len() <= 4096 => Ok(v.clone()),
            _ => Err(GlueError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!(
                    "The request is missing the `{name}` parameter, or gives it more than once."
                ),
            )),
        }
    };
    let policy = Kind::BackOffice.sessions(app);
    let issued = match field("grant_type")?.as_str() {
        "password" => {
            let (username, password) = (field("username")?, field("password")?);
            let si = app.signin(&app.config.glue.signin);
            let user = si
                .password(&username, &password, Role::Admin, origin(call))
                .await
                .map_err(GlueError::from_oauth)?
                .complete(&si)
                .await
                .map_err(GlueError::from_oauth)?;
            app.sessions()
                .start(&user, subject(app, &user), policy, origin(call))
                .await
                .map_err(GlueError::from_oauth)?
        }
        "refresh_token" => {
            let token = field("refresh_token")?;
            app.sessions()
                .refresh(&token, policy, origin(call), |user| subject(app, user))
                .await
                .map_err(GlueError::from_oauth)?
                .1
        }
        _ => {
            return Err(GlueError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            ));
        }
    };
    Ok(web::json(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": issued.access_expires_at - issued.issued_at,
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token.expose(),
        }),
    ))
}
