//! `grace fleet`: the simulated fleet of a server in `--simulate` mode.

use grace_sim::FleetSnapshot;

use super::{Exit, client};
use crate::cli::Server;

pub fn run(server: Server, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        if json {
            let value = client
                .get_value(&["v1", "fleet"], &[])
                .map_err(|e| e.into_exit())?;
            println!("{value}");
            return Ok(Exit::Ok);
        }
        let fleet: FleetSnapshot = client
            .get(&["v1", "fleet"], &[])
            .map_err(|e| e.into_exit())?;
        print!("{fleet}");
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}
