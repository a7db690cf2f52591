//! The core's flow primitive (`identity::flows`) and the sign-in steps built on it, on every
//! store — the in-memory fake, SQLite, DynamoDB through the emulator — races included; and the
//! 100-failures-in-a-row rule of failure budgets.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use latchkey_core::identity::flows::{FlowError, SIGN_IN, SignInStep};
use latchkey_core::identity::limits::{self, Reservation};
use latchkey_core::identity::users::{Budget, Factor, MAX_CONSECUTIVE_FAILURES, Role};
use latchkey_core::identity::{DISABLED, Error, Origin, accounts};
use latchkey_core::records::flow::Proven;
use latchkey_core::records::profile;
use latchkey_tests::contract::race;
use latchkey_tests::harness::{Backend, TestApp};

const ORIGIN: Origin = Origin {
    ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
    via: "test",
};

fn flow_error(r: Result<impl std::fmt::Debug, Error>) -> FlowError {
    match r {
        Err(Error::Flow(e)) => e,
        other => panic!("expected a flow refusal, got {other:?}"),
    }
}

async fn a_flow_moves_step_by_step_and_refuses_everything_else(backend: Backend) {
    let t = TestApp::on(backend).await;
    let flows = t.app.flows();
    let flow = flows
        .start("test", "one", Proven::default(), 60)
        .await
        .unwrap();
    assert_eq!(flows.open(&flow.id, "test").await.unwrap(), flow);
    assert_eq!(
        flow_error(flows.open(&flow.id, "other-kind").await),
        FlowError::Unknown
    );
    assert_eq!(
        flow_error(
            flows
                .open("36f59381-5b54-48bd-a0c7-3b908c476732", "test")
                .await
        ),
        FlowError::Unknown
    );
    assert_eq!(
        flow_error(flows.open("not a uuid", "test").await),
        FlowError::Unknown
    );

    let proven = Proven {
        uid: Some(7),
        data: Some("+4915112345678"),
    };
    let two = flows.advance(&flow, "two", proven).await.unwrap();
    assert_eq!((two.step.as_str(), two.uid), ("two", Some(7)));
    assert_eq!(two.data.as_deref(), Some("+4915112345678"));
    // A move from a step the flow has left: refused, nothing changed.
    assert_eq!(
        flow_error(flows.advance(&flow, "three", Proven::default()).await),
        FlowError::OutOfOrder
    );
    assert_eq!(flows.open(&flow.id, "test").await.unwrap(), two);
    assert_eq!(
        flow_error(two.expect("three").map(|_| ())),
        FlowError::OutOfOrder
    );

    flows.finish(&two).await.unwrap();
    assert_eq!(
        flow_error(flows.open(&flow.id, "test").await),
        FlowError::Finished
    );
    assert_eq!(
        flow_error(flows.advance(&two, "three", Proven::default()).await),
        FlowError::Finished
    );

    let late = flows
        .start("test", "one", Proven::default(), 60)
        .await
        .unwrap();
    t.clock.advance(60);
    assert_eq!(
        flow_error(flows.open(&late.id, "test").await),
        FlowError::Expired
    );
    assert_eq!(
        flow_error(flows.advance(&late, "two", Proven::default()).await),
        FlowError::Expired
    );
    // Past the grace period the item is gone: unknown.
    t.clock.advance(3600);
    assert_eq!(
        flow_error(flows.open(&late.id, "test").await),
        FlowError::Unknown
    );
}

async fn twenty_racing_moves_of_one_flow_move_it_once(backend: Backend) {
    let t = Arc::new(TestApp::on(backend).await);
    let flow = t
        .app
        .flows()
        .start("test", "one", Proven::default(), 60)
        .await
        .unwrap();
    let results = race(20, |i| {
        let t = t.clone();
        let flow = flow.clone();
        async move {
            t.app
                .flows()
                .advance(&flow, &format!("two-{i}"), Proven::default())
                .await
        }
    })
    .await;
    let moved = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(moved, 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::Flow(FlowError::OutOfOrder)))
    );
}

async fn the_second_factor_is_reached_only_through_the_password(backend: Backend) {
    let t = TestApp::on(backend).await;
    let user = t
        .add_user(
            "c",
            "c@example.com",
            "correct horse battery",
            Role::Customer,
        )
        .await;
    let policy = t.app.config.wizard.signin.clone();
    let si = t.app.signin(&policy);
    let flows = t.app.flows();
    let flow = flows
        .start(
            SIGN_IN,
            SignInStep::Credentials.as_str(),
            Proven::default(),
            900,
        )
        .await
        .unwrap();
    // No resuming a flow whose password was never proven, at any step name.
    for step in [SignInStep::Credentials, SignInStep::Totp, SignInStep::Sms] {
        assert_eq!(
            flow_error(si.resume(&flow, step, ORIGIN).await.map(|_| ())),
            FlowError::OutOfOrder
        );
    }
    // A flow moved to a second-factor step without the password names no user: refused.
    let forged = flows
        .advance(&flow, SignInStep::Totp.as_str(), Proven::default())
        .await
        .unwrap();
    assert_eq!(
        flow_error(
            si.resume(&forged, SignInStep::Totp, ORIGIN)
                .await
                .map(|_| ())
        ),
        FlowError::OutOfOrder
    );

    let flow = flows
        .start(
            SIGN_IN,
            SignInStep::Credentials.as_str(),
            Proven::default(),
            900,
        )
        .await
        .unwrap();
    let ok = si
        .password("c", "correct horse battery", Role::Customer, ORIGIN)
        .await
        .unwrap();
    ok.park(&si, &flows, &flow, SignInStep::Totp).await.unwrap();
    let parked = flows.open(&flow.id, SIGN_IN).await.unwrap();
    assert_eq!(parked.uid, Some(user.id));
    let resumed = si.resume(&parked, SignInStep::Totp, ORIGIN).await.unwrap();
    assert_eq!(resumed.user.id, user.id);
    // The user has no authenticator: the code step says so, and counts nothing.
    assert!(matches!(
        resumed.totp(&si, "123456").await,
        Err(Error::NotConfigured)
    ));
    // Parking again (a second password on the same flow) is out of order.
    let again = si
        .password("c", "correct horse battery", Role::Customer, ORIGIN)
        .await
        .unwrap();
    assert_eq!(
        flow_error(
            again
                .park(&si, &flows, &parked, SignInStep::Sms)
                .await
                .map(|_| ())
        ),
        FlowError::OutOfOrder
    );
}

async fn a_hundred_failures_in_a_row_disable_a_factor_until_it_is_rebound(backend: Backend) {
    let t = TestApp::on(backend).await;
    let user = t
        .add_user(
            "d",
            "d@example.com",
            "correct horse battery",
            Role::Customer,
        )
        .await;
    // A budget that never blocks for long, so only the streak can stop the guesser.
    let budget = Budget {
        max_failures: 1000,
        window_secs: Some(60),
        block_secs: 60,
    };
    let key = profile::key(user.id);
    let reserve = || {
        limits::reserve(
            t.db(),
            &key,
            Factor::Password,
            &budget,
            profile::Guard::Exists,
            &[],
        )
    };
    for i in 0..MAX_CONSECUTIVE_FAILURES {
        if i % 30 == 29 {
            t.clock.advance(61); // new windows do not reset the streak
        }
        assert!(
            matches!(reserve().await.unwrap(), Reservation::Granted(_)),
            "attempt {i}"
        );
    }
    match reserve().await.unwrap() {
        Reservation::Locked { until } => assert_eq!(until, DISABLED),
        other => panic!("the 101st attempt: {other:?}"),
    }
    t.clock.advance(24 * 3600);
    assert!(matches!(
        reserve().await.unwrap(),
        Reservation::Locked { until: DISABLED }
    ));
    // The wizard says so.
    let uuid = t.get("/api/v2/my/signin/wizard", None).await.json["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = serde_json::json!({"uuid": uuid, "email": "d@example.com",
        "password": "correct horse battery", "device_fingerprint": "eyJ1c2VyX2FnZW50IjoieCJ9"});
    let r = t.post("/api/v2/my/signin", &body.to_string()).await;
    assert_eq!(r.json["error"], "factor_disabled", "{}", r.text);
    // Re-binding the factor (a new password) enables it again.
    accounts::set_password_by_login(
        t.db(),
        &t.app.hasher,
        t.app.rng.as_ref(),
        "d",
        &latchkey_core::crypto::SecretString::new("another long password".into()),
        "test",
    )
    .await
    .unwrap();
    assert!(matches!(reserve().await.unwrap(), Reservation::Granted(_)));
}

/// A windowed address budget whose reservations were all given back (right answers) starts a
/// new run once its window passed — it used to find its count stored as 0, not absent, and
/// refuse the restart, blocking a client that never failed.
async fn a_released_windowed_address_budget_restarts_after_its_window(backend: Backend) {
    use latchkey_core::identity::limits::SubjectReservation;
    use latchkey_core::records::rate;
    let t = TestApp::on(backend).await;
    let key = rate::budget_key("ip-failures", "192.0.2.1");
    let budget = Budget {
        max_failures: 5,
        window_secs: Some(60),
        block_secs: 600,
    };
    for _ in 0..3 {
        assert_eq!(
            limits::reserve_subject(t.db(), &key, &budget)
                .await
                .unwrap(),
            SubjectReservation::Granted
        );
        limits::release_subject(t.db(), &key).await.unwrap();
    }
    t.clock.advance(61);
    assert_eq!(
        limits::reserve_subject(t.db(), &key, &budget)
            .await
            .unwrap(),
        SubjectReservation::Granted
    );
}

macro_rules! every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(latchkey_tests::harness::Backend::Memory).await;
                }
            )*
        }
        latchkey_tests::flow_suite!($($case),*);
    };
}

every_store!(
    a_flow_moves_step_by_step_and_refuses_everything_else,
    twenty_racing_moves_of_one_flow_move_it_once,
    the_second_factor_is_reached_only_through_the_password,
    a_hundred_failures_in_a_row_disable_a_factor_until_it_is_rebound,
    a_released_windowed_address_budget_restarts_after_its_window,
);
