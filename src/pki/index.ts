/** Certificate bundles: loading, validation, inspection and minting. */
export { loadProfile, loadProfilesDir, verifyProfile, errorFinding, PROFILE_DEFAULTS, type LoadProfileOptions, type ProfilesDirResult } from './profile.js';
export { readMaterial, parseMaterial, MATERIAL_DEFAULTS, type Material, type MaterialForm, type ReadMaterialOptions } from './material.js';
export { pkcs12ForgeParseCount, clearPkcs12Cache } from './pkcs12.js';
export { describeCertificate, describeKey, spkiPin, dateStatus, daysLeft, oneLineName, type CertificateDescription, type KeyDescription, type DateStatus } from './inspect.js';
export { orderChain, issuedBy, isSelfSigned } from './chain.js';
export { FINDING_CODES, type FindingCode } from './findings.js';
export { mintCa, mintLeaf, type KeySpec, type MintedCert } from './mint.js';
export type { ClientIdentity, LoadedProfile, Finding, FindingSeverity, CertificateRole } from './types.js';
