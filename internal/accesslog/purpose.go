package accesslog

import "strings"

// DefaultPurpose is the purpose of use of a read that names none.
const DefaultPurpose = "TREAT"

// purposeCodes are the codes of the HL7 PurposeOfUse value set
// (http://terminology.hl7.org/ValueSet/v3-PurposeOfUse, FHIR R4: every
// concept of v3-ActReason under PurposeOfUse, the abstract root left out),
// each between spaces.
const purposeCodes = " HMARKT HOPERAT CAREMGT DONAT FRAUD GOV HACCRED HCOMPL HDECD HDIRECT HDM HLEGAL HOUTCOMS HPRGRP" +
	" HQUALIMP HSYSADMIN LABELING METAMGT MEMADMIN MILCDM PATADMIN PATSFTY PERFMSR RECORDMGT SYSDEV HTEST TRAIN HPAYMT" +
	" CLMATTCH COVAUTH COVERAGE ELIGDTRM ELIGVER ENROLLM MILDCRG REMITADV HRESCH BIORCH CLINTRCH CLINTRCHNPC CLINTRCHPC" +
	" PRECLINTRCH DSRCH POARCH TRANSRCH PATRQT FAMRQT PWATRNY SUPNWK PUBHLTH DISASTER THREAT TREAT CLINTRL COC ETREAT BTG" +
	" ERTREAT POPHLTH "

// ValidPurpose reports whether code is an HL7 PurposeOfUse code.
func ValidPurpose(code string) bool {
	return code != "" && !strings.ContainsAny(code, " ") && strings.Contains(purposeCodes, " "+code+" ")
}
