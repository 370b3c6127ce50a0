//! Requests per mail: the real `gmail-listener` against the fakes, each
//! server's log of requests checked request by request.

use bionicbb_tests::world::{World, fixture};

fn dump(w: &World) {
    eprintln!("GMAIL {:#?}", w.gmail.faults().requests());
    eprintln!("GERRIT {:#?}", w.gerrit.faults().requests());
    eprintln!("JENKINS {:#?}", w.jenkins.faults().requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe() {
    let w = World::new().await;
    w.sample_change(2);
    let (status, output) = w.once().await;
    assert!(status.success(), "{output}");
    dump(&w);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let (status, output) = w.once().await;
    assert!(status.success(), "{output}");
    dump(&w);
    panic!();
}
