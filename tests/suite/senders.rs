//! The SES v2 mailer and the SNS SMS sender: what they send arrives, as moto_server records it;
//! refusals are reported as such; throttling is retried with backoff and the very same message,
//! a bounded number of times, then reported as retryable.

use latchkey_aws::clients::MAX_ATTEMPTS;
use latchkey_aws::send::{SesMailer, SnsSms};
use latchkey_core::ports::{Email, Mailer, SendError, Sms, SmsSender};
use latchkey_tests::fake_service::{ThrottlingService, answer};
use latchkey_tests::stores::{
    aws_clients, aws_clients_at, namespace, ses_sent_to, sns_sent_to, verify_ses_sender,
};

fn email(to: &str) -> Email {
    Email {
        to: to.into(),
        subject: "Your sign-in code".into(),
        text: "Your code is 493027.".into(),
        html: Some("<p>Your code is <b>493027</b>.</p>".into()),
    }
}

#[tokio::test]
async fn ses_delivers_the_email_from_the_verified_sender() {
    let clients = aws_clients().await;
    let from = format!("sender-{}@example.com", namespace());
    verify_ses_sender(&from).await;
    let to = format!("shopper-{}@example.com", namespace());
    SesMailer::new(clients.sesv2.clone(), &from)
        .send_email(&email(&to))
        .await
        .unwrap();

    let sent = ses_sent_to(&to).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["source"], from.as_str());
    assert_eq!(sent[0]["subject"], "Your sign-in code");
    assert!(sent[0]["body"].as_str().unwrap().contains("493027"));
}

#[tokio::test]
async fn ses_refusing_an_unverified_sender_is_a_rejection_not_a_retry() {
    let clients = aws_clients().await;
    let from = format!("unverified-{}@example.com", namespace());
    let to = format!("shopper-{}@example.com", namespace());
    let err = SesMailer::new(clients.sesv2.clone(), from)
        .send_email(&email(&to))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn sns_delivers_the_text_message_to_the_number() {
    let clients = aws_clients().await;
    // A number of this test's own: +1555 and 7 digits from the namespace's hash.
    let digits: u64 = namespace()
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 10_000_000;
    let to = format!("+1555{digits:07}");
    SnsSms::new(clients.sns.clone(), Some("SHOP".into()))
        .send_sms(&Sms {
            to: to.clone(),
            body: "Your code is 771204".into(),
        })
        .await
        .unwrap();

    let sent = sns_sent_to(&to).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["message"], "Your code is 771204");
}

/// SES v2 (REST/JSON) throttling, and a sent message.
fn ses_answers() -> (String, String) {
    (
        answer(
            "429 Too Many Requests",
            "x-amzn-errortype: TooManyRequestsException\r\ncontent-type: application/json\r\n",
            r#"{"message":"Maximum sending rate exceeded."}"#,
        ),
        answer(
            "200 OK",
            "content-type: application/json\r\n",
            r#"{"MessageId":"m-1"}"#,
        ),
    )
}

/// SNS (query/XML) throttling, and a published message.
fn sns_answers() -> (String, String) {
    (
        answer(
            "400 Bad Request",
            "content-type: text/xml\r\n",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>",
        ),
        answer(
            "200 OK",
            "content-type: text/xml\r\n",
            "<PublishResponse><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></PublishResponse>",
        ),
    )
}

#[tokio::test]
async fn throttled_ses_is_retried_with_the_very_same_message() {
    let service = ThrottlingService::start(2, ses_answers()).await;
    let clients = aws_clients_at(&service.url).await;
    SesMailer::new(clients.sesv2, "latchkey@example.com")
        .send_email(&email("shopper@example.com"))
        .await
        .unwrap();
    let bodies = service.bodies();
    assert_eq!(
        bodies.len(),
        3,
        "two throttled attempts, then the one that went through"
    );
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "every attempt sent the same message"
    );
    assert!(String::from_utf8_lossy(&bodies[0]).contains("493027"));
}

#[tokio::test]
async fn ses_throttling_that_does_not_end_is_a_retryable_error_after_bounded_attempts() {
    let service = ThrottlingService::start(usize::MAX, ses_answers()).await;
    let clients = aws_clients_at(&service.url).await;
    let err = SesMailer::new(clients.sesv2, "latchkey@example.com")
        .send_email(&email("shopper@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retryable(_)), "{err:?}");
    assert_eq!(service.bodies().len(), MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn throttled_sns_is_retried_with_the_very_same_message_then_reported_retryable() {
    let sms = Sms {
        to: "+15550100".into(),
        body: "Your code is 771204".into(),
    };
    let service = ThrottlingService::start(1, sns_answers()).await;
    let clients = aws_clients_at(&service.url).await;
    SnsSms::new(clients.sns, None).send_sms(&sms).await.unwrap();
    let bodies = service.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1]);

    let service = ThrottlingService::start(usize::MAX, sns_answers()).await;
    let clients = aws_clients_at(&service.url).await;
    let err = SnsSms::new(clients.sns, None)
        .send_sms(&sms)
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retryable(_)), "{err:?}");
    assert_eq!(service.bodies().len(), MAX_ATTEMPTS as usize);
}
