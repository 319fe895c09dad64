//! Leases that reserve GPUs: run on the GPU backend with the CPU reference's checkpoint root,
//! and refused before they start when the machine lacks the GPUs now. The tests that need an
//! adapter carry `gpu` in their names and skip without one (unless `ORRERY_GPU_TESTS=1`).

use super::*;
use orrery_provider::gpu::MlGpu;
use orrery_types::resources::GpuSpec;

fn gpu_hardware() -> Hardware {
    Hardware {
        gpu: Some(GpuSpec {
            model: orrery_types::codec::Text::new("Test GPU".to_string()).unwrap(),
            vram_mib: 24_576,
            count: 1,
        }),
        ..hardware()
    }
}

fn gpu_worker(chain: &LedgerChain, seed: u64, data: &std::path::Path) -> Worker<LedgerChain> {
    let mut cfg = config(seed, data, Cheat::None);
    cfg.hardware = Some(gpu_hardware());
    cfg.stake = Some(Params::default().min_stake(&gpu_hardware()).unwrap());
    let offer = cfg.offer(gpu_hardware()).unwrap();
    Worker::new(&cfg, offer, chain.clone(), Arc::new(AtomicBool::new(false))).unwrap()
}

/// Register the agent, then open lease `id` reserving one GPU for `bundle`.
fn open_gpu_lease(chain: &LedgerChain, agents: &mut [Worker<LedgerChain>], bundle: &Bundle) {
    rounds(chain, agents, 2);
    chain.put_bundle(bundle);
    let height = chain.with(|n| n.state.height());
    let mut t = terms();
    t.resources.gpus = 1;
    chain.submit_from(
        &Keypair::from_seed(0),
        TxBody::OpenLease {
            provider: agents[0].account(),
            job: bundle.hash(),
            terms: t,
            deadline: height + 300,
            verification: Verification::None,
        },
    );
    chain.block();
    assert!(
        chain.with(|n| n.state.lease(0).is_some()),
        "lease opened: {:?}",
        chain.with(|n| n.refused.clone())
    );
}

fn lease_state(chain: &LedgerChain) -> LeaseState {
    chain.with(|n| n.state.lease(0).unwrap().state.clone())
}

#[test]
fn a_lease_reserving_a_gpu_without_a_gpu_backend_is_refused_before_it_starts() {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let mut agents = vec![gpu_worker(&chain, 1, data.path())];
    open_gpu_lease(&chain, &mut agents, &ml_bundle(6));
    rounds(&chain, &mut agents, 4);
    assert!(
        matches!(lease_state(&chain), LeaseState::AwaitingStart),
        "not started: {:?}",
        lease_state(&chain)
    );
    let snap = agents[0].snapshot();
    assert_eq!(snap.leases_refused, 1);
    assert!(snap.running.is_empty());
}

#[test]
fn gpu_lease_runs_on_the_gpu_with_the_cpu_root_and_a_lost_gpu_refuses_the_next() {
    let Some(gpu) = orrery_ml_gpu("gpu_lease_runs_on_the_gpu_with_the_cpu_root") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(3, Params::default());
    let mut agents = vec![gpu_worker(&chain, 1, data.path())];
    agents[0].use_gpu(MlGpu {
        device: gpu.clone(),
        count_now: |configured| configured.unwrap_or(0),
        configured: Some(1),
    });
    let bundle = ml_bundle(6);
    open_gpu_lease(&chain, &mut agents, &bundle);
    rounds(&chain, &mut agents, 4);
    let LeaseState::Committed {
        checkpoint_root, ..
    } = lease_state(&chain)
    else {
        panic!("{:?}", lease_state(&chain));
    };
    let orrery_ml::Device::Gpu(ctx) = &gpu else {
        unreachable!()
    };
    assert!(ctx.dispatches() > 0, "the GPU ran the job");
    let runtime = orrery_exec::Runtime::new().unwrap();
    let mut job = orrery_provider::job::load(&runtime, &bundle, 1).unwrap();
    let rec = run(&mut job, Start::Fresh, |_, _, _| true)
        .unwrap()
        .unwrap();
    assert_eq!(
        checkpoint_root,
        rec.checkpoint_root(),
        "GPU root = CPU root"
    );

    // The GPU is gone (driver unloaded, card pulled): the next GPU lease is refused.
    let data2 = tempfile::tempdir().unwrap();
    let chain2 = LedgerChain::new(3, Params::default());
    let mut agents2 = vec![gpu_worker(&chain2, 1, data2.path())];
    agents2[0].use_gpu(MlGpu {
        device: gpu,
        count_now: |_| 0,
        configured: Some(1),
    });
    open_gpu_lease(&chain2, &mut agents2, &bundle);
    rounds(&chain2, &mut agents2, 4);
    assert!(matches!(lease_state(&chain2), LeaseState::AwaitingStart));
    assert_eq!(agents2[0].snapshot().leases_refused, 1);
}

fn orrery_ml_gpu(test: &str) -> Option<orrery_ml::Device> {
    match orrery_ml::Device::gpu() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("ORRERY_GPU_TESTS").as_deref() == Ok("1") => {
            panic!("{test}: ORRERY_GPU_TESTS=1 but {e}")
        }
        Err(e) => {
            eprintln!("{test}: skipped, {e}");
            None
        }
    }
}
