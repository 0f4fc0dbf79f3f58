//! Seeds: `demo` (a realistic organisation) and `empty`; `--scale N` extra mailboxes; `--rng`
//! makes both deterministic. (Skeleton.)

use crate::model::{App, Directory, Tenant};
use crate::state::PublishedApp;
use crate::{SimError, SimOptions};

pub fn build(_opts: &SimOptions) -> Result<(Directory, Vec<PublishedApp>), SimError> {
    let mut t = Tenant::new(uuid::Uuid::new_v4(), "contoso.onmicrosoft.com", "Contoso");
    let app = App::new("calgate");
    t.apps.push(app);
    Ok((Directory { tenants: vec![t] }, Vec::new()))
}
