//! `orch run --json-events`: every update of the run's stream as one JSON line on
//! stdout, in the shapes of [`crate::output::run::UpdateJson`].

use orch_engine::Subscription;

use crate::output::run::UpdateJson;

pub(super) async fn report(mut sub: Subscription) {
    while let Some(u) = sub.next().await {
        let line = serde_json::to_string(&UpdateJson::from(&u)).expect("updates always serialise");
        println!("{line}");
    }
}
