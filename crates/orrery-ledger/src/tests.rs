use crate::apply::share;

#[test]
fn share_is_exact_when_it_fits_and_close_when_it_does_not() {
    assert_eq!(share(1_000, 1, 4), 250);
    assert_eq!(share(1_000, 3, 4), 750);
    assert_eq!(share(7, 0, 0), 0);
    // a * b overflows u128: scaled down, still within a hair of the true share.
    let a = u128::MAX / 2;
    let got = share(a, 4, 8);
    let exact = a / 2;
    assert!(
        got <= exact && exact - got <= exact >> 100,
        "{got} vs {exact}"
    );
}
