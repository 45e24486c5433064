/** Certificate bundles: parsing, validation, inspection and minting (profiles load in definitions/). */
export { readMaterial, parseMaterial, MATERIAL_DEFAULTS, type Material, type MaterialForm, type ReadMaterialOptions } from './material.js';
export { pkcs12ForgeParseCount, clearPkcs12Cache } from './pkcs12.js';
export { describeCertificate, describeKey, spkiPin, dateStatus, daysLeft, oneLineName, type CertificateDescription, type KeyDescription, type DateStatus } from './inspect.js';
export { orderChain, issuedBy, isSelfSigned } from './chain.js';
export { FINDING_CODES, type FindingCode } from './findings.js';
export { mintCa, mintLeaf, type KeySpec, type MintedCert } from './mint.js';
export type { ClientIdentity, LoadedProfile, Finding, FindingSeverity, CertificateRole, ProfileDocument, PassphraseSource } from './types.js';
