export const CRD_GROUP = 'familyhub.dev';
export const CRD_VERSION = 'v1alpha1';
export const API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`;
