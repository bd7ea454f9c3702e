"""Elastic tensor algebra: Voigt notation, rotations, averages, stability.

Pure numpy. Voigt order is xx, yy, zz, yz, xz, xy throughout mlipprops; strains in Voigt form use engineering
shear (gamma_yz = 2 eps_yz), so that stress = C @ strain and the elastic energy is 1/2 strain . C . strain.
"""
from __future__ import annotations

import numpy as np

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_VOIGT_INDEX = np.array([[0, 5, 4], [5, 1, 3], [4, 3, 2]])
# LAMMPS orders pressure and virial components xx yy zz xy xz yz: their tensor indices, and their positions in Voigt
LAMMPS_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
LAMMPS_TO_VOIGT = [0, 1, 2, 5, 4, 3]
# compute born/matrix: 21 values, the upper triangle of the Voigt matrix in this order (LAMMPS manual)
BORN_ORDER = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5),
              (1, 2), (1, 3), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5), (3, 4), (3, 5), (4, 5))


def stress_to_voigt(sigma: np.ndarray) -> np.ndarray:
    """3x3 symmetric stress -> 6-vector (xx yy zz yz xz xy)."""
    return np.array([sigma[i, j] for i, j in VOIGT_PAIRS])


def voigt_to_stress(s: np.ndarray) -> np.ndarray:
    """6-vector -> 3x3 symmetric stress."""
    return np.asarray(s, float)[_VOIGT_INDEX]


def voigt_strain_tensor(component: int, amount: float) -> np.ndarray:
    """Symmetric 3x3 strain for one Voigt component; shear components are engineering strains."""
    eps = np.zeros((3, 3))
    i, j = VOIGT_PAIRS[component]
    if i == j:
        eps[i, i] = amount
    else:
        eps[i, j] = eps[j, i] = amount / 2.0
    return eps


def voigt_to_tensor(C: np.ndarray) -> np.ndarray:
    """6x6 stiffness -> 3x3x3x3 tensor C_ijkl."""
    return np.asarray(C, float)[np.ix_(_VOIGT_INDEX.ravel(), _VOIGT_INDEX.ravel())].reshape(3, 3, 3, 3)


def tensor_to_voigt(T: np.ndarray) -> np.ndarray:
    """3x3x3x3 stiffness -> 6x6 (no factors: stiffness convention)."""
    return np.array([[T[i, j, k, l] for k, l in VOIGT_PAIRS] for i, j in VOIGT_PAIRS])


def rotate_stiffness(C: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Stiffness in the frame x' = R x. R may be improper: a rank-4 tensor does not notice."""
    T = voigt_to_tensor(C)
    return tensor_to_voigt(np.einsum("ia,jb,kc,ld,abcd->ijkl", R, R, R, R, T, optimize=True))


def rotate_stiffness_error(C_err: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Standard errors of a rotated symmetric stiffness, its 21 independent components' errors taken as
    independent (C_ab and C_ba are one number)."""
    var = np.zeros((6, 6))
    for a in range(6):
        for b in range(a, 6):
            unit = np.zeros((6, 6))
            unit[a, b] = unit[b, a] = 1.0
            var += rotate_stiffness(unit, R) ** 2 * C_err[a, b] ** 2
    return np.sqrt(var)


def born_from_rows(rows: np.ndarray) -> np.ndarray:
    """(T, 6, 6) symmetric matrices from (T, 21) values in BORN_ORDER."""
    rows = np.atleast_2d(rows)
    out = np.zeros((len(rows), 6, 6))
    for k, (i, j) in enumerate(BORN_ORDER):
        out[:, i, j] = out[:, j, i] = rows[:, k]
    return out


def born_to_row(B: np.ndarray) -> np.ndarray:
    return np.array([B[i, j] for i, j in BORN_ORDER])


def stress_strain_coefficients(C: np.ndarray, stress: np.ndarray) -> np.ndarray:
    """Wallace's stress-strain coefficients B from Brugger constants C at a (total, tensile-positive, Voigt)
    stress s: B_ijkl = C_ijkl + 1/2 (s_ik d_jl + s_jk d_il + s_il d_jk + s_jl d_ik - 2 s_ij d_kl) (Wallace,
    Thermodynamics of Crystals, 1972). Hydrostatic pressure P: B11 = C11 - P, B12 = C12 + P, B44 = C44 - P.
    B is what a strain does to the stress (finite differences, strain fluctuations under pressure) and what
    stability under load depends on; C is the curvature of the free energy in Lagrangian strain (the Born
    stress-fluctuation formula). They are equal at zero stress. Check: an ideal gas (C = P K, s = -P I) gets
    bulk modulus P and shear modulus 0."""
    sig, d = voigt_to_stress(stress), np.eye(3)
    corr = 0.5 * (np.einsum("ik,jl->ijkl", sig, d) + np.einsum("jk,il->ijkl", sig, d)
                  + np.einsum("il,jk->ijkl", sig, d) + np.einsum("jl,ik->ijkl", sig, d)
                  - 2.0 * np.einsum("ij,kl->ijkl", sig, d))
    return np.asarray(C, float) + tensor_to_voigt(corr)


def brugger_constants(B: np.ndarray, stress: np.ndarray) -> np.ndarray:
    """The inverse of stress_strain_coefficients: C from B at the stress s."""
    return np.asarray(B, float) - (stress_strain_coefficients(np.zeros((6, 6)), stress))


def compliance(C: np.ndarray) -> np.ndarray:
    """S = C^-1 (Voigt, engineering shear strains, so no factors of 2 or 4 are needed)."""
    return np.linalg.inv(C)


def symmetrize(C: np.ndarray) -> np.ndarray:
    return 0.5 * (C + C.T)


def moduli(C: np.ndarray) -> dict[str, float]:
    """Voigt, Reuss and Hill bulk and shear moduli, Hill Young's modulus and Poisson ratio."""
    S = compliance(C)
    d, od, sh = slice(0, 3), [(0, 1), (0, 2), (1, 2)], slice(3, 6)
    c_diag, c_off, c_shear = np.trace(C[d, d]), sum(C[i, j] for i, j in od), np.trace(C[sh, sh])
    s_diag, s_off, s_shear = np.trace(S[d, d]), sum(S[i, j] for i, j in od), np.trace(S[sh, sh])
    kv = (c_diag + 2.0 * c_off) / 9.0
    gv = (c_diag - c_off + 3.0 * c_shear) / 15.0
    kr = 1.0 / (s_diag + 2.0 * s_off)
    gr = 15.0 / (4.0 * s_diag - 4.0 * s_off + 3.0 * s_shear)
    kh, gh = 0.5 * (kv + kr), 0.5 * (gv + gr)
    return {
        "bulk_voigt": kv, "bulk_reuss": kr, "bulk_hill": kh,
        "shear_voigt": gv, "shear_reuss": gr, "shear_hill": gh,
        "young_hill": 9.0 * kh * gh / (3.0 * kh + gh),
        "poisson_hill": (3.0 * kh - 2.0 * gh) / (2.0 * (3.0 * kh + gh)),
    }


def born_eigenvalues(C: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric Voigt matrix. All positive <=> the strain energy is positive definite
    (the generic Born criterion at zero stress; under pressure use the stress-strain coefficients)."""
    return np.linalg.eigvalsh(symmetrize(C))


VOIGT_NAMES = ("e1", "e2", "e3", "e4", "e5", "e6")
MARGINAL_RATIO = 0.05  # softest / stiffest eigenvalue below this (20x softer): a soft strain, 'marginal'


def eigen_with_errors(C: np.ndarray, C_err: np.ndarray | None = None):
    """Eigenvalues (ascending) and eigenvectors (columns, first large component positive) of the symmetrized
    Voigt matrix, with the eigenvalues' first-order errors sqrt(sum_ij (v_i v_j s_ij)^2)."""
    w, v = np.linalg.eigh(symmetrize(C))
    v = v * np.sign(v[np.argmax(np.abs(v) > 0.1, axis=0), range(6)])
    err = (np.sqrt(np.sum((np.einsum("ik,jk->kij", v, v) * C_err) ** 2, axis=(1, 2))) if C_err is not None
           else np.zeros(6))
    return w, v, err


def certainly_positive_definite(C: np.ndarray, C_err: np.ndarray | None = None) -> bool:
    """Every eigenvalue above three of its error bars (stability's threshold)."""
    w, _, err = eigen_with_errors(C, C_err)
    return bool(np.all(w > 3 * err))


def stability(C: np.ndarray, C_err: np.ndarray | None = None) -> dict:
    """Born stability with the soft direction named: the eigenvalues of the Voigt matrix with their first-order
    errors (sum_ij (v_i v_j s_ij)^2), the weakest strain (eigenvector) and a verdict. 'unstable': an eigenvalue
    below zero by more than 3 error bars; 'marginal': an eigenvalue within 3 error bars of zero (any of them, not
    only the smallest: a badly determined stiffness may hide a soft strain), or the smallest positive but under 5 %
    of the stiffest (a soft mode: the crystal is close to a symmetry-lowering instability, and everything that
    divides by this eigenvalue -- compliance, Reuss and Hill moduli, Young's modulus along that strain -- is
    ill-determined); 'stable' otherwise. The strain named is the most negative one when unstable, the least
    certainly positive one (smallest eigenvalue / error) when marginal by error, else the softest."""
    w, v, err = eigen_with_errors(C, C_err)
    if np.any(w < -3 * err):
        k, verdict = 0, "unstable"
    elif np.any(w <= 3 * err):
        k, verdict = int(np.argmin(w / np.maximum(err, 1e-300))), "marginal"
    else:
        k, verdict = 0, "marginal" if w[0] < MARGINAL_RATIO * w[-1] else "stable"
    vec = v[:, k]
    terms = [(c, n) for c, n in zip(vec, VOIGT_NAMES) if abs(c) > 0.1]
    strain = " ".join(f"{'-' if c < 0 else '+'} {abs(c):.2f} {n}" for c, n in terms).lstrip("+ ")
    return {"verdict": verdict, "softest_eigenvalue": float(w[k]), "softest_eigenvalue_err": float(err[k]),
            "softest_strain": vec, "softest_strain_text": strain, "stiffest_eigenvalue": float(w[-1])}


def tetragonal_combinations(C: np.ndarray) -> dict[str, float]:
    """The independent constants of a tetragonal crystal (c along z), symmetry-equivalent entries averaged, with
    the combinations that stay well defined when C11 - C12 is near zero (a soft orthorhombic shear, as in urea):
    C11 + C12, and the bulk moduli. Voigt: uniform strain, (2 (C11 + C12) + C33 + 4 C13) / 9; Reuss: uniform stress
    (the hydrostatic modulus), [C33 (C11 + C12) - 2 C13^2] / (C11 + C12 + 2 C33 - 4 C13), which holds no C11 - C12."""
    c11, c12 = 0.5 * (C[0, 0] + C[1, 1]), 0.5 * (C[0, 1] + C[1, 0])
    c13 = 0.25 * (C[0, 2] + C[2, 0] + C[1, 2] + C[2, 1])
    c33, c44, c66 = C[2, 2], 0.5 * (C[3, 3] + C[4, 4]), C[5, 5]
    s = c11 + c12
    return {"C11": c11, "C12": c12, "C13": c13, "C33": c33, "C44": c44, "C66": c66,
            "C11+C12": s, "C11-C12": c11 - c12, "bulk_voigt": (2 * s + c33 + 4 * c13) / 9,
            "bulk_reuss": (c33 * s - 2 * c13 ** 2) / (s + 2 * c33 - 4 * c13)}


def directional_young(S: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Young's modulus along unit vectors n (rows): 1 / (n_i n_j n_k n_l S_ijkl).

    The compliance tensor S_ijkl carries the Voigt factors: S_ijkl = S_mn / (2 if shear) / (2 if shear).
    """
    n = np.atleast_2d(directions)
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    factors = np.where(np.arange(6) < 3, 1.0, 0.5)
    St = voigt_to_tensor(S * np.outer(factors, factors))
    return 1.0 / np.einsum("ni,nj,nk,nl,ijkl->n", n, n, n, n, St, optimize=True)
