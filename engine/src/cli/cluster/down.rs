//! `cluster down`: terminate a cluster.

use super::{WhichArgs, runtime, which};
use crate::cli::{EXIT_OK, EXIT_RUNTIME};
use crate::cluster::describe;

pub(super) fn down(args: WhichArgs) -> i32 {
    let Some(rt) = runtime() else {
        return EXIT_RUNTIME;
    };
    rt.block_on(async {
        let (client, id, _) = match which(&args).await {
            Ok(x) => x,
            Err(code) => return code,
        };
        match client.terminate_job_flows().job_flow_ids(&id).send().await {
            Ok(_) => {
                outln!("{id}");
                errln!("cluster {id} is terminating");
                EXIT_OK
            }
            Err(e) => {
                errln!("error: TerminateJobFlows {id} failed: {}", describe(&e));
                EXIT_RUNTIME
            }
        }
    })
}
